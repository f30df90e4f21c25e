"""The benchmark scenarios (see ``bench.scenarios.base``); ``SCENARIOS`` in
``bench.scenarios.registry`` lists them in the order ``make bench`` runs them."""
