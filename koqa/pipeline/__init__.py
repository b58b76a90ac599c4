"""The QA pipeline: retriever + reader + calibrated combined confidence.

>>> from koqa.pipeline import QAPipeline   # also exported as ``koqa.QAPipeline``
"""

from koqa.pipeline.calibration import Calibration
from koqa.pipeline.qa import QAPipeline, QAResult, no_answer

__all__ = ["QAPipeline", "QAResult", "Calibration", "no_answer"]
