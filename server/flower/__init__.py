"""The coordinator's Flower side: the ServerApp and its strategy, the Grid it runs on, the
client of the SuperLink's Control API, and the app bundle (FAB) partners receive."""
