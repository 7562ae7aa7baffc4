"""The service's endpoints, one APIRouter per concern (create_app includes them all).

page      GET / (the page; its assets are mounted at /static by create_app)
meta      GET /health, /ready (open probes), /metadata, /model-card, /metrics
predict   POST /predict (one or many images), /predict/ (the MLOps write-up's contract)
explain   POST /explain (a Grad-CAM PNG)
examples  GET /examples, /examples/{name}: embedded CIFAKE test images to try (open)
"""
