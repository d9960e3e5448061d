"""Serving: ``facenet-tf serve`` (an HTTP JSON API over ``facenet_tf.api.FaceNet`` with micro-batching, a token
for gallery changes, upload limits and a small web page) and galleries in a database (``store``: SQLite in WAL mode
by default, PostgreSQL by URI).

    store.py     FaceStore by URI: enrol / remove / list / search, transactional; .npz import
    batching.py  MicroBatcher: concurrent requests' items in one call; bounded queue, max batch, max wait
    service.py   FaceService: safe decoding with size limits, faces found and embedded as the library does
    app.py       the FastAPI application (endpoints, errors as JSON, OpenAPI)
    server.py    serve(): the service on uvicorn

Sits on top beside ``api`` and ``cli`` (imports api, recognition, evaluation, data); nothing below imports it.
FastAPI, uvicorn and psycopg are the ``serve`` extra, imported only when used.
"""
