"""The extractive reader: question + context(s) → scored character spans.

>>> from koqa.reader import QAReader, Span                    # doctest: +SKIP
>>> QAReader.from_pretrained("koqa:reader-small").read("수도는?", "대한민국의 수도는 서울이다.")  # doctest: +SKIP
"""

from koqa.reader.base import Reader, Span, TokenProbs
from koqa.reader.qa import QAReader, ReaderConfig

__all__ = ["QAReader", "ReaderConfig", "Reader", "Span", "TokenProbs"]
