"""Silkcheck at SilkRoad's scale: a compact ConnTable for 10M connections, vectorised
hashes bit-exact with ``model.hashing``, and quantitative analysis against theory."""
