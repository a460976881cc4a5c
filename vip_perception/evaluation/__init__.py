"""Harnesses that measure the library, apart from what the node runs: the deadline evaluation
(``deadline``, scored by ``scoring``, reported by ``report``), background CPU load (``load``) and
the detector evaluation (``detector``). Submodules are imported explicitly; this package
imports nothing so that ``load``'s worker processes stay light."""
