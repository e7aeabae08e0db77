"""Numba-compiled kernels.  Plain ``@njit`` functions over arrays and scalars;
the Python drivers in :mod:`fastpid.methods` validate and convert first."""
