"""Training and evaluation of readers: SQuAD/KorQuAD datasets, the official metric, fine-tuning,
distillation and calibration fitting. Inference (:mod:`koqa.reader`, :mod:`koqa.pipeline`) never imports it."""
