"""The MLOps write-up's server design, for comparison: one PIL decode and one forward per request.

FastAPI with an ``async def`` endpoint that reads the upload, decodes it with PIL, normalises it
and runs the network on that one image on the event loop, as the write-up's `api.py` did. The
model and the arithmetic are realfake's (same weights, resize, normalisation and flip TTA), so
both servers give the same answers and only the serving design differs.

    python benchmarks/naive_server.py RUN --port 8001
"""

from __future__ import annotations

import argparse
import io

import torch
import uvicorn
from fastapi import FastAPI, File, HTTPException, UploadFile
from PIL import Image

from realfake.data.decode import prepare_image
from realfake.inference import Predictor, tta_probabilities


def build(model_ref: str) -> FastAPI:
    predictor = Predictor.load(model_ref)
    spec, model = predictor.spec, predictor.model
    mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(spec.std).view(1, 3, 1, 1)
    app = FastAPI()

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "model_loaded": True, "device": "cpu", "checkpoint": model_ref}

    @app.post("/predict/")
    async def predict(data: UploadFile = File(...)) -> dict:  # noqa: B008 (as the write-up)
        contents = await data.read()
        try:
            image = Image.open(io.BytesIO(contents))
            pixels = prepare_image(image, spec.image_size, spec.resize)
        except Exception as exc:
            raise HTTPException(400, "invalid image") from exc
        x = (torch.from_numpy(pixels.copy()).float().unsqueeze(0) / 255 - mean) / std
        with torch.no_grad():
            probs = tta_probabilities(model, x, spec.flip_tta)[0]
        label = spec.classes[int(probs.argmax())]
        return {"prediction": label, "probs": dict(zip(spec.classes, probs.tolist(), strict=True))}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    uvicorn.run(build(args.model), host="127.0.0.1", port=args.port, access_log=False)


if __name__ == "__main__":
    main()
