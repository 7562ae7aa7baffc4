"""The HTTP service: a trained model behind FastAPI, with a page to drop images on.

settings    ServeSettings: every default, read from arguments or REALFAKE_SERVE_* variables
model       the Scorer served (predictor, TTA, decision rule) and what answers may say of it
images      Decoder: uploads decoded off the event loop, declared pixels checked before decoding
batching    MicroBatcher: requests that arrive together share one forward pass
service     Service: the scorer loaded in the background, its decoder, batcher and Grad-CAM;
            each answer's verdict combined with the file's provenance as predict combines it
card        the model card: the run's records (data, test figures per source), rule, limits
examples    the embedded CIFAKE test images the page offers to try
schemas     the JSON answers (the decision rule's record in each)
deps        FastAPI dependencies: the Service, its settings, the ready Scorer, the API key
uploads     multipart forms -> prepared images or per-file refusals -> decisions
routers/    the endpoints, one APIRouter per concern (page, meta, predict, explain, examples)
limits      ASGI middleware: HEAD as GET, the body limit while streaming, a 500 with an id
metrics     Prometheus metrics in a registry of the app's own
app         create_app(): the FastAPI application (nothing starts until a server runs it)
server      serve(): uvicorn on the settings' address, one or several worker processes
static/     the page at / (plain HTML, CSS and JavaScript, served by the app itself)
"""

from realfake.serve.app import create_app
from realfake.serve.settings import ServeSettings

__all__ = ["ServeSettings", "create_app"]
