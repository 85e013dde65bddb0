"""The local demo; its sample stream ships with the model (``fusion_model/corpora``), made by
``sample_source.py`` from the texts in ``sample_source.json``."""
from fusion_model.corpora import SAMPLE_EVENTS as SAMPLE, sample_objects

__all__ = ["SAMPLE", "sample_objects"]
