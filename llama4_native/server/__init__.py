"""`llama4-native serve`: an OpenAI-compatible HTTP server (FastAPI + uvicorn) with a web chat
page. app.py: routes; engine_loop.py: the one thread that owns the model; lifecycle.py: one HTTP
request on it; protocol.py / responses.py: OpenAI bodies; media.py: image URL policy; metrics.py:
Prometheus; serve.py: the command line; static/: the page.

Nothing is imported here, so that the CLI's other commands do not need FastAPI installed:
`from llama4_native.server.app import create_app, ServerConfig`."""
