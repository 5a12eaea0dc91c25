"""ZipLine's gRPC API (``manage.py rungrpc``): the REST API's actions over gRPC, through the same service layer.

* ``proto/zipline/v1/zipline.proto``: the API; the generated code is checked in beside it
  (:mod:`jobs.grpc.codegen` writes it, ``tests/test_grpc_codegen.py`` checks it matches).
* :mod:`~jobs.grpc.servicer`: each method, thin: convert, call :mod:`jobs.service`, convert back.
* :mod:`~jobs.grpc.calls`: what every call goes through: the token, the permission, the rate limit, errors.
* :mod:`~jobs.grpc.errors`: the REST API's error translation, mapped onto gRPC status codes in one table.
* :mod:`~jobs.grpc.convert`: messages to :class:`~jobs.validation.JobSpec` and rows (REST's shapes) to messages.
* :mod:`~jobs.grpc.watch`: how WatchJob sees a job change.
* :mod:`~jobs.grpc.server`: the server: the API, the health service and reflection on one port.
"""
