"""NeuroCLIP Monitor: a real-time EEG-fNIRS biomarker for methamphetamine dependence.

Research software, not a medical device. The packages are ``models`` (signals, data,
preprocessing, simulation), ``streamer`` (the live path) and ``dashboard``; this one holds
the command line.
"""

__version__ = "0.1.0"
