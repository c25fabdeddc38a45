"""Side-by-side overhead benchmarks of convotel against its peers (``make bench``)."""
