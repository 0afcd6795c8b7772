"""Training: the loop (``loop``), the learning-rate schedule (``schedule``), several GPUs
(``distributed``), run folders (``runs``) and the time a run will take (``estimate``)."""
