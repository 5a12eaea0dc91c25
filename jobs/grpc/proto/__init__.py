"""Code generated from zipline.proto by jobs.grpc.codegen (never edited by hand) lives under here."""
