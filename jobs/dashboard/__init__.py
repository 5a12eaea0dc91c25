"""The operators' dashboard at ``/dashboard/``: queues, workers, failures and jobs, refreshed live.

Server-rendered Django templates plus a small script (``static/dashboard/dashboard.js``) that swaps
in fresh HTML fragments every few seconds; no front-end build, no third-party assets.
"""
