"""Infrastructure every layer uses: configuration and environment flags (``config``),
input checks that name the argument (``checks``), atomic file writes (``files``), the
headline-number recorder (``metrics``) and the notebook runner behind ``make run``
(``runner``)."""
