"""Shared logic of the multi-Region release pipeline's Lambda functions.

Each function under ``functions/`` is a thin handler: it parses its event, builds its typed
configuration (:mod:`release_pipeline.config`) and its clients (:mod:`release_pipeline.clients`),
and calls one function of this package.
"""
