"""Korean text utilities shared by ingest, retrieval and the reader: Kiwi sentences and BM25 terms
(:mod:`koqa.text.kiwi`) and particle trimming of answer spans (:mod:`koqa.text.particles`)."""
