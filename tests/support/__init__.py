"""What tests share beyond fixtures: tasks and policies, real Flower runs, the processes
this test session started, and a headless browser."""
