"""Video and photo jobs over HTTP, on a queue that scales past one machine.

``POST /jobs`` on the matting service (:mod:`jobs.api`) stores the upload in the shared
folder, records the job in Redis (:mod:`jobs.store`) and queues its first step on Celery
(:mod:`jobs.queue`); workers on any machine that reaches Redis and the folder
(``python -m jobs worker``, :mod:`jobs.tasks`) plan it, convert its chunks in parallel and
join them (:mod:`jobs.work`, over :mod:`core.video.chunks`). ``GET /jobs/<id>`` reads the
state from Redis; the result is served from the folder.
"""
