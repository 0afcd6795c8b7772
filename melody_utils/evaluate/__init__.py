"""How good a model is: likelihood and n-gram baselines (``likelihood``), copying from the corpus
(``originality``), the sampling sweep (``sweep``) and the evaluation report (``report``)."""
