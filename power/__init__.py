"""Board power: sensor families, discovery, the sampling loop, idle statistics, the simulator.

Only the modules in this package know sysfs paths or call NVML; everything above it speaks in
rows of numbers and rail names.
"""
