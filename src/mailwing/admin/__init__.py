"""The admin HTTP listener: JSON API, web console, Prometheus metrics, client autoconfiguration.

Stack, and why:

* **FastAPI** (on Starlette) for the routes: the OpenAPI document at ``/api/openapi.json`` is
  generated from the route signatures and pydantic models, so it cannot drift from the code;
  request validation (types, bounds) comes from the same declarations. Both projects are
  actively maintained and widely deployed.
* **uvicorn** as the HTTP server, run *inside the worker's own event loop*
  (:mod:`mailwing.admin.server`) on sockets bound like the mail listeners' (``SO_REUSEPORT``,
  so with ``server.workers = N`` every worker serves the admin port too). Its signal handling
  is switched off: the worker's SIGTERM handling stops it with the mail listeners.
* **Jinja2** for the console's server-rendered pages (autoescaping on); a few lines of our own
  JavaScript for copy buttons, served by mailwing; no CDN, no build step.
* **prometheus-client** for ``/metrics`` (see :mod:`mailwing.services.metrics`).
* **nh3** (ammonia) to sanitise message HTML (see :mod:`mailwing.services.mailview`).

Layering: this package is a front end. Routes are thin; every rule lives in ``services``
(accounts, queue_admin, admin_tokens, mailview, dnsrecords, metrics), shared with the CLI.
Nothing imports this package except :mod:`mailwing.app`.
"""
