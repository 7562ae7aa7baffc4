"""The HTTP service: a trained model behind FastAPI, with a page to drop images on.

settings    ServeSettings: address, limits, batching, API key, CORS (every default is safe)
model       loading the predictor (torch or ONNX backend) and deciding with its threshold
images      uploaded bytes -> the network's uint8 input, oversize images refused before decoding
batching    MicroBatcher: requests that arrive together share one forward pass
limits      ASGI middleware: body size limit while streaming, a 500 with an id for the unexpected
metrics     Prometheus metrics in a registry of the app's own
app         create_app(): the FastAPI application (nothing starts until a server runs it)
server      serve(): uvicorn on the settings' address, one or several worker processes
static/     the page at / (plain HTML, CSS and JavaScript, served by the app itself)
"""

from realfake.serve.app import create_app
from realfake.serve.settings import ServeSettings

__all__ = ["ServeSettings", "create_app"]
