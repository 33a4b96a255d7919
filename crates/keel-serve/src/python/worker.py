"""A keel serving worker: loads one MLflow model with mlflow.pyfunc and answers predictions.

keel starts this program with the model's folder and a Unix socket path to connect to. Every
message on the socket is a frame: a 4-byte big-endian length, one byte of kind, then the
payload. keel sends `P` (a batch of rows as an Arrow IPC stream); the worker answers `A` (the
predictions as an Arrow IPC stream) or `E` (a JSON error), and says `R` (JSON: ready, with its
versions) once the model is loaded, or `F` (JSON: why it could not load it). The worker ends
when keel closes the socket (or kills it).
"""

import json
import socket
import struct
import sys
import traceback


def send(sock, kind, payload):
    sock.sendall(struct.pack(">IB", len(payload) + 1, kind) + payload)


def send_json(sock, kind, value):
    send(sock, kind, json.dumps(value).encode())


def receive(sock):
    head = read_exactly(sock, 5)
    if head is None:
        return None, None
    length, kind = struct.unpack(">IB", head)
    body = read_exactly(sock, length - 1)
    if body is None:
        return None, None
    return kind, body


def read_exactly(sock, n):
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:])
        if k == 0:
            return None
        got += k
    return bytes(buf)


def arrow_to_input(pa, np, table):
    """The model's input: a pandas frame for column signatures, arrays for tensor ones."""
    meta = table.schema.metadata or {}
    if meta.get(b"keel.input") != b"tensors":
        return table.to_pandas()
    arrays = {}
    for field, column in zip(table.schema, table.columns):
        shape = json.loads(field.metadata[b"keel.shape"])
        values = column.combine_chunks()
        if pa.types.is_fixed_size_list(values.type):
            values = values.flatten()
        arr = values.to_numpy(zero_copy_only=False)
        if pa.types.is_string(values.type):
            arr = arr.astype(object)
        arrays[field.name] = np.asarray(arr).reshape(shape)
    if meta.get(b"keel.named") == b"false" and len(arrays) == 1:
        return next(iter(arrays.values()))
    return arrays


def array_column(pa, np, arr):
    """One column of rows from an array of any rank, with its shape for keel."""
    arr = np.asarray(arr)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.dtype.kind in "OUS":
        flat = pa.array([None if v is None else str(v) for v in arr.reshape(-1)], pa.string())
    else:
        flat = pa.array(arr.reshape(-1))
    if arr.ndim > 1:
        width = int(np.prod(arr.shape[1:]))
        column = pa.FixedSizeListArray.from_arrays(flat, width)
    else:
        column = flat
    return column, json.dumps(list(arr.shape)).encode()


def output_to_arrow(pa, pd, np, output):
    """The model's answer as a record batch whose metadata says how MLflow would write it."""
    if isinstance(output, pd.Series):
        name = "0" if output.name is None else str(output.name)
        output = output.to_frame(name=name)
    if isinstance(output, pd.DataFrame):
        fields, columns = [], []
        for name in output.columns:
            column, shape = array_column(pa, np, output[name].to_numpy())
            fields.append(pa.field(str(name), column.type, metadata={b"keel.shape": shape}))
            columns.append(column)
        form = b"records"
    elif isinstance(output, dict):
        fields, columns = [], []
        for name, value in output.items():
            column, shape = array_column(pa, np, value)
            fields.append(pa.field(str(name), column.type, metadata={b"keel.shape": shape}))
            columns.append(column)
        form = b"named"
    else:
        column, shape = array_column(pa, np, output)
        fields = [pa.field("predictions", column.type, metadata={b"keel.shape": shape})]
        columns = [column]
        form = b"list"
    schema = pa.schema(fields, metadata={b"keel.form": form})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema) as writer:
        writer.write_batch(pa.record_batch(columns, schema=schema))
    return sink.getvalue().to_pybytes()


def main():
    model_dir, socket_path = sys.argv[1], sys.argv[2]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(socket_path)
    try:
        import numpy as np
        import pandas as pd
        import pyarrow as pa
        import mlflow
        import mlflow.pyfunc
        from mlflow.exceptions import MlflowException

        model = mlflow.pyfunc.load_model(model_dir)
    except BaseException as e:  # the reason goes to keel, which prints it in one line
        send_json(sock, ord("F"), {"message": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()})
        return
    send_json(sock, ord("R"), {
        "python": sys.version.split()[0],
        "mlflow": mlflow.__version__,
        "loader": model.metadata.flavors.get("python_function", {}).get("loader_module"),
    })
    while True:
        kind, body = receive(sock)
        if kind is None:
            return
        try:
            table = pa.ipc.open_stream(body).read_all()
            data = arrow_to_input(pa, np, table)
            output = model.predict(data)
            send(sock, ord("A"), output_to_arrow(pa, pd, np, output))
        except MlflowException as e:
            # MLflow's own checks of the input against the signature: the request's fault.
            send_json(sock, ord("E"), {"kind": "input", "message": e.message})
        except Exception as e:
            send_json(sock, ord("E"), {"kind": "model", "message": f"{type(e).__name__}: {e}",
                                        "traceback": traceback.format_exc()})


if __name__ == "__main__":
    main()
