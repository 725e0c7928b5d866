"""The training domain: configs, presets, the manager, worker processes, the loop, trainers."""
