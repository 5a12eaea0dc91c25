"""The API's OpenAPI description, apart from the views it describes.

* :mod:`~jobs.api.schema.common`: what drf-spectacular cannot infer: the bearer scheme, the error
  responses with examples, the seed's examples, links between operations, the API's description
  (``postprocess``, the ``POSTPROCESSING_HOOK``).
* :mod:`~jobs.api.schema.operations`: each view's operations (``extend_schema``), applied to the
  views by their class names (:func:`document`), so a view reads as plain code.
"""

from jobs.api.schema.common import (
    COMMON_ERRORS,
    DESCRIPTION,
    EXAMPLE_ID,
    SEED_JOB,
    SEED_JOB_RESPONSE,
    BearerTokenScheme,
    error_responses,
    postprocess,
)
from jobs.api.schema.operations import document

__all__ = [
    "COMMON_ERRORS",
    "DESCRIPTION",
    "EXAMPLE_ID",
    "SEED_JOB",
    "SEED_JOB_RESPONSE",
    "BearerTokenScheme",
    "document",
    "error_responses",
    "postprocess",
]
