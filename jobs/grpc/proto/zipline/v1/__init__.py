"""Generated from zipline.proto by jobs.grpc.codegen: never edited by hand."""
