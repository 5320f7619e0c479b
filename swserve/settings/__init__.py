"""Where settings come from (``sources.py``) and how their table is documented
(``doc.py``); the table itself is ``swserve/config.py``."""
