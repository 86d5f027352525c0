"""Grad-CAM must point at what made the model decide."""

import numpy as np
import pytest

from mlcore.explain import Explainer, colormap


def _blob_image(rng, size=96, centre=None, radius=9):
    image = rng.normal(40, 4, (size, size)).clip(0, 255)
    if centre is not None:
        yy, xx = np.mgrid[:size, :size]
        image[(yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 < radius ** 2] = 240
    return image.astype(np.uint8)[..., None]


@pytest.fixture(scope="module")
def blob_model():
    """A small ResNet that learned 'a bright blob somewhere' versus 'nothing'."""
    import keras

    from mlcore.model import build_model

    rng = np.random.default_rng(0)
    images, labels = [], []
    for i in range(320):
        has_blob = i % 2 == 0
        centre = tuple(rng.integers(14, 82, 2)) if has_blob else None
        images.append(_blob_image(rng, centre=centre))
        labels.append(int(has_blob))
    model = build_model(class_names=("empty", "blob"), image_size=96, augment=False, seed=1)
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(np.stack(images), np.array(labels), epochs=6, batch_size=32, verbose=0)
    return model


def test_heat_map_of_a_single_blob_peaks_on_the_blob(blob_model):
    explainer = Explainer(blob_model, ("empty", "blob"))
    rng = np.random.default_rng(7)
    cell = 96 / 3  # the last block's feature map is 3x3 for a 96 px input
    hits = 0
    centres = [(20, 20), (20, 75), (75, 20), (75, 75), (48, 48)]
    for centre in centres:
        cam = explainer.explain(_blob_image(rng, centre=centre), "blob")
        assert cam.heatmap.shape == (96, 96)
        peak = np.unravel_index(np.argmax(cam.heatmap), cam.heatmap.shape)
        opposite = (95 - centre[0], 95 - centre[1])
        hits += (np.hypot(peak[0] - centre[0], peak[1] - centre[1]) <= cell
                 and cam.heatmap[centre] >= 0.5 and cam.heatmap[centre] > 2 * cam.heatmap[opposite])
    assert hits >= 4, f"the map peaked on the blob for only {hits} of {len(centres)} positions"


def test_map_defaults_to_the_predicted_class_and_refuses_unknown_ones(blob_model):
    explainer = Explainer(blob_model, ("empty", "blob"))
    cam = explainer.explain(_blob_image(np.random.default_rng(3), centre=(30, 30)))
    assert cam.class_name == "blob"
    with pytest.raises(ValueError, match="unknown class"):
        explainer.explain(_blob_image(np.random.default_rng(3)), "Tumor")


def test_overlay_is_transparent_where_the_map_is_cold():
    from mlcore.explain import GradCam

    heat = np.zeros((10, 10), np.float32)
    heat[5, 5] = 1.0
    rgba = GradCam("x", heat).overlay_rgba()
    assert rgba.shape == (10, 10, 4)
    assert rgba[0, 0, 3] == 0 and rgba[5, 5, 3] > 150
    hot, cold = colormap(np.array([1.0, 0.0]))
    assert hot[0] > hot[2] and cold[2] > cold[0]  # hot is red, cold is blue


def test_blend_keeps_the_image_size_and_is_rgb(blob_model):
    explainer = Explainer(blob_model, ("empty", "blob"))
    image = _blob_image(np.random.default_rng(4), centre=(50, 50))
    blended = explainer.explain(image).blend(image)
    assert blended.shape == (96, 96, 3) and blended.dtype == np.uint8


def _body_image(rng, body: tuple[int, int, int], blob: tuple[int, int] | None, size: int = 96) -> np.ndarray:
    """A dark field holding a grey square 'body' (top, left, side), with a bright blob inside it or not."""
    image = rng.normal(5, 2, (size, size))
    top, left, side = body
    image[top:top + side, left:left + side] = rng.normal(100, 4, (side, side))
    if blob is not None:
        yy, xx = np.mgrid[:size, :size]
        image[(yy - blob[0]) ** 2 + (xx - blob[1]) ** 2 < 16] = 240
    return image.clip(0, 255).astype(np.uint8)[..., None]


def test_heat_map_of_a_body_cropping_model_lands_on_the_blob_in_the_slice_as_given():
    import keras

    from mlcore.model import build_model

    rng = np.random.default_rng(0)
    images, labels = [], []
    for i in range(320):
        side = int(rng.integers(40, 60))
        top, left = (int(v) for v in rng.integers(2, 94 - side, 2))
        blob = (top + int(rng.integers(8, side - 8)), left + int(rng.integers(8, side - 8))) if i % 2 == 0 else None
        images.append(_body_image(rng, (top, left, side), blob))
        labels.append(int(blob is not None))
    model = build_model(class_names=("empty", "blob"), image_size=96, augment=False, seed=1, body_crop=True)
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy")
    model.fit(np.stack(images), np.array(labels), epochs=6, batch_size=32, verbose=0)
    explainer = Explainer(model, ("empty", "blob"))

    # Bodies off to one side of the field, blobs in different corners of them: where the crop moved them most.
    # The last feature map is 3x3 cells over the body, so the map's centre of mass, not its peak, is compared.
    cases = [((4, 4, 44), (14, 14)), ((4, 48, 44), (38, 80)), ((48, 4, 44), (80, 38)), ((48, 48, 44), (60, 60))]
    yy, xx = np.mgrid[:96, :96]
    near = 0
    for body, blob in cases:
        heat = explainer.explain(_body_image(np.random.default_rng(9), body, blob), "blob").heatmap
        centre = (float((heat * yy).sum() / heat.sum()), float((heat * xx).sum() / heat.sum()))
        near += np.hypot(centre[0] - blob[0], centre[1] - blob[1]) <= 12
        top, left, side = body
        around = np.ones((96, 96), bool)  # beyond the body and the crop's margin
        around[max(0, top - 6):top + side + 6, max(0, left - 6):left + side + 6] = False
        assert heat[around].max() <= 0.05, f"heat outside the body at {body}"
    assert near >= 3, f"the map centred on the blob for only {near} of {len(cases)} bodies"
