"""Wire models, pure codecs and stream translators. No I/O."""
