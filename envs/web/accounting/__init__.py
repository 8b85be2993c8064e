"""What the web costs: budgets on calls and money, and the counters evaluations and training logs read."""
