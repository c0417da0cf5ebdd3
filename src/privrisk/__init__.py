"""privrisk: how findable are you from your face?

Data flows one way, one module a stage::

    images -> faces -> embeddings -> index / gallery -> matching -> metrics -> exposure -> report

Importing privrisk loads no model and starts no work; the face model loads on first use
(:func:`privrisk.models.load_face_model`).
"""

__version__ = "0.1.0"
