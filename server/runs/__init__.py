"""A run's life: the states it goes through and the only code that moves it between them."""
