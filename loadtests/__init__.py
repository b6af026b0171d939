"""Load testing for Responses API servers and chat-completions upstreams (``respcheck load``).

Layout: ``metrics`` (exact latency/throughput math on raw samples, no I/O), ``observe``
(sans-IO: timed bytes of one exchange in, one ``Sample`` out, judged by the same SSE decoder
and stream checker as ``respcheck run``), ``http1`` (a small blocking HTTP/1.1 client over h11
that hands bytes over as they arrive), ``workload`` (request bodies), ``user`` (the locust
user), ``runner`` (stages of a sweep on a locust Environment, local or master/worker),
``report`` (results.json, samples.csv, report.html, the console table), ``cli`` (argparse for
``respcheck load``), ``servers`` (the embedded target and the benchmark's servers as
subprocesses), ``overhead`` (the gateway overhead benchmark).

Nothing here imports locust (and so gevent's monkey-patching) at import time except ``user``,
``runner`` and ``worker``, which run only in processes of their own.
"""
