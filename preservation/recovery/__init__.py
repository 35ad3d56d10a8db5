"""Recovery: rebuilding the catalogue from the stores (:mod:`.rebuild`)."""
