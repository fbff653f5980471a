import numpy as np
from PIL import Image

from facespace.grid import make_grid, save_grid


def test_grid_shape_and_placement(tmp_path):
    imgs = np.zeros((5, 4, 6, 1), np.float32)
    imgs[4] = 1.0
    g = make_grid(imgs, ncols=3, pad=1, scale=2)
    assert g.shape == (2 * 9 + 1, 3 * 13 + 1, 3) and g.dtype == np.uint8
    # the fifth tile (row 1, col 1) is white, the first is black
    assert (g[1 + 9 + 1 : 1 + 9 + 8, 1 + 13 + 1 : 1 + 13 + 12] == 255).all()
    assert (g[1:9, 1:13] == 0).all()
    path = save_grid(imgs, tmp_path / "g.png", ncols=3)
    assert Image.open(path).size == (3 * 6 + 4 * 2, 2 * 4 + 3 * 2)
