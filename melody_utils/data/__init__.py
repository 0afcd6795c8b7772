"""Where the pieces come from and how training reads them: MAESTRO (``maestro``), the embedded corpora
and MIDI folders (``sources``), the token cache (``corpus``), composer ids (``composers``), training windows
(``windows``) and carried-state streams (``streams``)."""
