"""BROJA atoms (bits) of the canonical gates, written out by hand.

These are the tests' reference for the gates; they do not come from
``fastpid.distributions.KNOWN`` (which is itself checked against them).
Inputs are independent uniform bits unless said otherwise; h is the binary
entropy, h(1/4) = 0.8112781244591328.

XOR  Y = X1 xor X2.  Y is independent of each input alone: I1 = I2 = 0, so
     R <= min(I1, I2) = 0 and U1 = I1 - R = 0, U2 = 0; S = I - R - U1 - U2
     = H(Y) = 1.
AND  Y = X1 and X2.  I = H(Y) = h(1/4); H(Y | X1) = P(X1=1) h(1/2) = 1/2, so
     I1 = I2 = h(1/4) - 1/2 = 0.31127812445913283.  The BROJA optimum has
     U1 = U2 = 0 (Bertschinger et al. 2014, Table 1), so R = I1 = 0.311278...
     and S = I - R = 1/2.
OR   Y = X1 or X2: AND with every bit flipped (a relabelling), same atoms.
RDN  X1 = X2 = Y, one uniform bit.  The marginals p(x1,y) and p(x2,y) force
     x1 = y = x2 in every q of Delta_P, so q = p: U1 = I_q(X1;Y|X2) = 0,
     U2 = 0, S = I - I_q = 0, R = I1 - U1 = 1.
UNQ  Y = X1, X2 independent.  I2 = 0 forces R = U2 = 0; I1 = 1 = R + U1
     gives U1 = 1; I = 1 = R + U1 + U2 + S gives S = 0.
COPY Y = (X1, X2) (4 labels).  y determines x1 and x2, so Delta_P = {p} and
     I_q = I = 2: S = 0; U1 = I_q(X1;Y|X2) = H(X1|X2) = 1, U2 = 1, R = I1 - U1
     = 1 - 1 = 0.
"""

AND_R = 0.31127812445913283  # h(1/4) - 1/2

TEXTBOOK = {
    "xor": dict(R=0.0, U1=0.0, U2=0.0, S=1.0),
    "and_": dict(R=AND_R, U1=0.0, U2=0.0, S=0.5),
    "or_": dict(R=AND_R, U1=0.0, U2=0.0, S=0.5),
    "rdn": dict(R=1.0, U1=0.0, U2=0.0, S=0.0),
    "unq": dict(R=0.0, U1=1.0, U2=0.0, S=0.0),
    "copy": dict(R=0.0, U1=1.0, U2=1.0, S=0.0),
}
