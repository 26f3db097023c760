"""The API's HTTP plumbing: typed errors and their one JSON shape, parsers, content
negotiation, cursor pagination, request ids, idempotent request handling, and the JSON
answers Django gives outside DRF (unknown routes, crashes, the docs page).
"""
