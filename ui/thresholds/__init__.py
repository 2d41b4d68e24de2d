"""Helpers of the Thresholds page, one module per part: the rule editor (:mod:`.editor`), the replay\nview and sweep (:mod:`.view`) and the Apply dialog (:mod:`.apply`)."""
