"""From samples to gated windows, one way for live monitoring, offline scoring and training.

- :mod:`~models.pipeline.streams`: what is fed in (stream descriptions, chunks);
- :mod:`~models.pipeline.buffer`: one stream's preprocessing chain and ring buffers;
- :mod:`~models.pipeline.grid`: where windows end, every edge rule in one place;
- :mod:`~models.pipeline.phase`: treatment phase and cue from the markers;
- :mod:`~models.pipeline.pipeline`: :class:`WindowPipeline`, which ties them together;
- :mod:`~models.pipeline.recording`: a whole recording through it (scoring, training);
- :mod:`~models.pipeline.compat`: whether a stream fits a model bundle.

Nothing here knows about LSL, MQTT or files: the callers bring the samples.
"""
