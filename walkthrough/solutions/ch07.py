"""Chapter 7, exercise gradient_at_the_cut: the two paths into h = E1(x_s) add up."""


def gradient_at_the_cut(model, dz, d_decoder_in, cache_e2):
    dh = model.E2.backward(dz, cache_e2)             # through z = E2(h)
    if model.config.skip != "none":
        dh = dh + d_decoder_in                       # straight across: G2's input is h + d
    return dh
