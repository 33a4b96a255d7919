"""The fastest Python way to serve the benchmark's ONNX model: onnxruntime inside a plain ASGI
app run by uvicorn (no framework). It answers MLflow's scoring protocol for `dataframe_split`
bodies: `{"predictions": [{"label": ..., "probabilities": [...]}, ...]}`.

    MODEL=rf.onnx uvicorn ort_app:app --port 5057 --log-level warning
"""

import json
import os

import numpy as np
import onnxruntime as ort

options = ort.SessionOptions()
options.intra_op_num_threads = 1
session = ort.InferenceSession(os.environ["MODEL"], options, providers=["CPUExecutionProvider"])
input_name = session.get_inputs()[0].name
output_names = [o.name for o in session.get_outputs()]


async def read_body(receive):
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["method"] == "GET":
        status, payload = 200, b"\n"
    else:
        body = json.loads(await read_body(receive))
        x = np.asarray(body["dataframe_split"]["data"], dtype=np.float32)
        outputs = session.run(output_names, {input_name: x})
        rows = [
            {name: (value[i].tolist() if hasattr(value[i], "tolist") else value[i]) for name, value in zip(output_names, outputs)}
            for i in range(len(x))
        ]
        status, payload = 200, json.dumps({"predictions": rows}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": payload})
