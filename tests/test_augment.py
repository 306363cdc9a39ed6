"""The batched augmentations of ``netspec train`` beyond flip/crop/cutout/normalize
(those are in test_train.py): rotate, resized_crop, scale, color, cutmix, mixup; each
against an independent reference (torch.rot90, pooling, interpolation, the textbook
colour formulas, colorsys, pixel counts), and the soft targets they give the loss."""

from __future__ import annotations

import colorsys
import math
from typing import Any

import pytest

from netspec import SpecError, load_text
from netspec.spec.augment import Color, CutMix, MixUp, Normalize, ResizedCrop, Rotate, Scale

torch = pytest.importorskip("torch")
F = torch.nn.functional

from netspec.backends.train import augment  # noqa: E402 (needs torch)
from netspec.backends.train.augment import Pipeline  # noqa: E402

torch.set_num_threads(1)
CPU = torch.device("cpu")


def images(b: int = 8, c: int = 3, h: int = 8, w: int = 8, seed: int = 0) -> Any:
    return torch.rand((b, c, h, w), generator=torch.Generator().manual_seed(seed))


def gen(seed: int = 0) -> Any:
    return torch.Generator().manual_seed(seed)


def pipeline(entry: Any, seed: int = 0, classes: int = 0, c: int = 3) -> Pipeline:
    return Pipeline([entry], torch.zeros((1, c, 8, 8), dtype=torch.uint8), seed, CPU, classes)


GEOMETRY_AND_COLOUR = [
    Rotate(p=1, degrees=30),
    Rotate(p=1, degrees=30, fill=0.5),
    ResizedCrop(),
    ResizedCrop(scale=(0.5, 0.5), ratio=(2, 2)),
    Scale(p=1, factor=(0.5, 1.5)),
    Scale(p=1, factor=(0.5, 1.5), fill=1),
    Color(p=1),
    Color(p=1, brightness=0, contrast=0, saturation=0, hue=0.5),
]
MIXING = [CutMix(p=1), MixUp(p=1, alpha=1)]
IDENTITIES = [
    Rotate(p=0),
    Rotate(p=1, degrees=0),
    ResizedCrop(p=0),
    Scale(p=0),
    Scale(p=1, factor=(1, 1)),
    Color(p=0),
    Color(p=1, brightness=0, contrast=0, saturation=0, hue=0),
]


# --- every augmentation ----------------------------------------------------------------


@pytest.mark.parametrize("entry", GEOMETRY_AND_COLOUR, ids=repr)
def test_shape_dtype_and_the_seed(entry: Any) -> None:
    x = images(h=8, w=10)
    out = augment.AUGMENT[entry.op](x, entry, gen(1))
    assert out.shape == x.shape and out.dtype == x.dtype and not torch.equal(out, x)
    assert torch.equal(out, augment.AUGMENT[entry.op](x, entry, gen(1)))
    assert not torch.equal(out, augment.AUGMENT[entry.op](x, entry, gen(2)))


@pytest.mark.parametrize("entry", MIXING, ids=repr)
def test_mixing_gives_soft_targets_classes_wide_reproducibly(entry: Any) -> None:
    x, y = images(b=16), torch.arange(16) % 5
    first, second, other = (pipeline(entry, seed, classes=5) for seed in (1, 1, 2))
    out, target = first.train(x, y)
    assert out.shape == x.shape and out.dtype == x.dtype and not torch.equal(out, x)
    assert target.shape == (16, 5) and target.dtype == torch.float32
    assert (target >= 0).all() and torch.allclose(target.sum(1), torch.ones(16))
    again = second.train(x, y)
    assert torch.equal(out, again[0]) and torch.equal(target, again[1])
    assert not torch.equal(out, other.train(x, y)[0])
    assert not torch.equal(out, first.train(x, y)[0])  # the next batch draws anew


@pytest.mark.parametrize("entry", IDENTITIES, ids=repr)
def test_p0_or_zero_strength_is_the_identity(entry: Any) -> None:
    x = images()
    assert torch.equal(augment.AUGMENT[entry.op](x, entry, gen()), x)


@pytest.mark.parametrize("entry", [CutMix(p=0), MixUp(p=0)], ids=repr)
def test_mixing_with_p0_keeps_images_and_gives_one_hot_targets(entry: Any) -> None:
    x, y = images(), torch.arange(8) % 3
    out, target = pipeline(entry, classes=3).train(x, y)
    assert torch.equal(out, x) and torch.equal(target, F.one_hot(y, 3).float())


def test_without_a_mixing_augmentation_the_labels_pass_through() -> None:
    x, y = images(), torch.arange(8)
    assert pipeline(Rotate(), classes=8).train(x, y)[1] is y


# --- rotate and scale ----------------------------------------------------------------


def test_the_sampling_grid_is_torchs_affine_grid() -> None:
    theta = torch.randn((5, 2, 3), generator=gen())
    expected = F.affine_grid(theta, [5, 1, 7, 9], align_corners=False)
    assert torch.allclose(augment.affine_grid(theta, 7, 9), expected, atol=1e-6)


def test_rotate_by_right_angles_is_rot90_on_a_square_image() -> None:
    x = images(b=2, h=7, w=7)
    out = augment.rotate_by(x, torch.tensor([90.0, -90.0]))
    assert torch.allclose(out[0], torch.rot90(x[0], 1, (1, 2)), atol=1e-6)  # counter-clockwise
    assert torch.allclose(out[1], torch.rot90(x[1], -1, (1, 2)), atol=1e-6)
    half = augment.rotate_by(x, torch.tensor([180.0, 0.0]))
    assert torch.allclose(half[0], x[0].flip(1, 2), atol=1e-6) and torch.allclose(half[1], x[1], atol=1e-6)


def test_rotate_keeps_pixels_square_on_a_wide_image_and_fills_the_corners() -> None:
    x = images(b=1, h=4, w=8)
    out = augment.rotate_by(x, torch.tensor([90.0]), fill=0.25)
    # the centred 4x4 square turns into itself; the sides come from outside
    assert torch.allclose(out[0, :, :, 2:6], torch.rot90(x[0, :, :, 2:6], 1, (1, 2)), atol=1e-6)
    assert torch.allclose(out[0, :, :, :2], torch.full((3, 4, 2), 0.25))
    corner = augment.rotate_by(images(h=8, w=8), torch.full((8,), 45.0), fill=0.5)[:, :, 0, 0]
    assert torch.allclose(corner, torch.full_like(corner, 0.5))  # its centre maps 1.45 px above the image


def test_rotate_agrees_with_kornia_at_any_angle() -> None:
    kornia = pytest.importorskip("kornia")
    x = images(b=3, h=9, w=13)
    angles = torch.tensor([30.0, -17.5, 123.0])
    expected = kornia.geometry.transform.rotate(x, angles, align_corners=False)
    assert torch.allclose(augment.rotate_by(x, angles), expected, atol=1e-5)


def test_rotate_draws_angles_within_degrees() -> None:
    # a vertical bar through the centre turned by t ends as a bar of slope tan(t)
    x = torch.zeros(64, 1, 33, 33)
    x[:, :, :, 16] = 1
    out = augment.rotate(x, Rotate(degrees=20, p=1), gen())
    top = out[:, 0, 0].argmax(1).float()  # the bar's column in the top row, 16 rows above the centre
    angles = torch.rad2deg(torch.atan((16 - top) / 16))
    assert angles.abs().max() <= 20 + 2 and angles.min() < -10 and angles.max() > 10


def test_scale_1_is_the_identity_half_is_2x2_pooling_and_2_magnifies() -> None:
    x = images(h=8, w=8)
    one = augment.zoom_by(x, torch.ones(8))
    assert torch.allclose(one, x, atol=1e-6)
    half = augment.zoom_by(x, torch.full((8,), 0.5), fill=0.75)
    assert torch.allclose(half[:, :, 2:6, 2:6], F.avg_pool2d(x, 2), atol=1e-6)
    border = torch.ones(8, 8, dtype=torch.bool)
    border[2:6, 2:6] = False
    assert torch.allclose(half[:, :, border], torch.full_like(half[:, :, border], 0.75))
    double = augment.zoom_by(x, torch.full((8,), 2.0))
    centre = F.interpolate(x[:, :, 2:6, 2:6], scale_factor=2, mode="bilinear", align_corners=False)
    assert torch.allclose(double[:, :, 1:-1, 1:-1], centre[:, :, 1:-1, 1:-1], atol=1e-6)  # interpolate clamps the rim


def test_scale_draws_within_the_range() -> None:
    # a centred square of side 8 in 32: its side after zooming is 8 times the factor
    x = torch.zeros(64, 1, 32, 32)
    x[:, :, 12:20, 12:20] = 1
    out = augment.scale(x, Scale(factor=(0.5, 1.5), p=1), gen())
    sides = out[:, 0].sum(dim=(1, 2)).sqrt() / 8  # area is preserved by bilinear sampling up to the rim
    assert sides.min() > 0.45 and sides.max() < 1.55 and sides.max() - sides.min() > 0.5


# --- resized crop --------------------------------------------------------------------


def test_crop_resized_is_the_box_interpolated_to_the_size() -> None:
    x = images(b=2, h=8, w=8)
    top, left = torch.tensor([0.0, 3.0]), torch.tensor([2.0, 4.0])
    out = augment.crop_resized(x, top, left, torch.full((2,), 4.0), torch.full((2,), 4.0))
    for i in range(2):
        t, le = int(top[i]), int(left[i])
        box = x[i : i + 1, :, t : t + 4, le : le + 4]
        expected = F.interpolate(box, size=(8, 8), mode="bilinear", align_corners=False)[0]
        assert torch.allclose(out[i, :, 1:-1, 1:-1], expected[:, 1:-1, 1:-1], atol=1e-6)
    whole = augment.crop_resized(x, torch.zeros(2), torch.zeros(2), torch.full((2,), 8.0), torch.full((2,), 8.0))
    assert torch.allclose(whole, x, atol=1e-6)
    ones = torch.ones(1, 1, 8, 8)  # a box in the corner, magnified: its rim is not darkened by zeros beyond
    corner = augment.crop_resized(ones, torch.zeros(1), torch.zeros(1), torch.full((1,), 3.0), torch.full((1,), 3.0))
    assert torch.allclose(corner, ones)


def test_crop_boxes_have_the_area_and_ratio_asked_and_lie_inside() -> None:
    x = torch.zeros(512, 3, 24, 32)
    top, left, height, width = augment.crop_boxes(x, ResizedCrop(scale=(0.2, 0.9), ratio=(0.5, 2.0)), gen())
    area, ratio = height * width / (24 * 32), width / height
    assert area.min() >= 0.2 - 1e-5 and area.max() <= 0.9 + 1e-5
    assert ratio.min() >= 0.5 - 1e-5 and ratio.max() <= 2.0 + 1e-5
    assert (top >= 0).all() and (left >= 0).all() and (top + height <= 24 + 1e-4).all()
    assert (left + width <= 32 + 1e-4).all()
    assert area.max() - area.min() > 0.5 and ratio.max() / ratio.min() > 3  # spread over the ranges


def test_crop_boxes_that_cannot_fit_fall_back_to_the_largest_centred_box() -> None:
    x = torch.zeros(4, 1, 16, 16)
    top, left, height, width = augment.crop_boxes(x, ResizedCrop(scale=(0.9, 1.0), ratio=(4.0, 4.0)), gen())
    assert torch.allclose(width, torch.full((4,), 16.0)) and torch.allclose(height, torch.full((4,), 4.0))
    assert torch.allclose(top, torch.full((4,), 6.0)) and torch.allclose(left, torch.zeros(4))


# --- colour --------------------------------------------------------------------------


def luma(x: Any) -> Any:
    return 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]


def test_brightness_contrast_saturation_are_the_textbook_formulas() -> None:
    x, f = images(b=4), torch.tensor([0.0, 0.5, 1.0, 1.7])
    k = f[:, None, None, None]
    assert torch.allclose(augment.brightness(x, f), (x * k).clamp(0, 1))
    mean = luma(x).mean(dim=(1, 2, 3), keepdim=True)
    assert torch.allclose(augment.contrast(x, f), (mean + k * (x - mean)).clamp(0, 1), atol=1e-6)
    assert torch.allclose(augment.saturation(x, f), (luma(x) + k * (x - luma(x))).clamp(0, 1), atol=1e-6)
    assert torch.allclose(augment.saturation(x, torch.zeros(4)), luma(x).expand_as(x), atol=1e-6)  # gray


def test_a_hue_shift_of_a_third_turns_red_into_green_and_green_into_blue() -> None:
    x = torch.zeros(2, 3, 2, 2)
    x[0, 0] = 1
    x[1, 1] = 1
    out = augment.hue(x, torch.full((2,), 1 / 3))
    assert torch.allclose(out[0], F.one_hot(torch.tensor(1), 3).float()[:, None, None].expand(3, 2, 2), atol=1e-6)
    assert torch.allclose(out[1], F.one_hot(torch.tensor(2), 3).float()[:, None, None].expand(3, 2, 2), atol=1e-6)


def test_hue_agrees_with_colorsys_pixel_by_pixel() -> None:
    x = images(b=3, h=4, w=4)
    x[0, :, 0, 0] = torch.tensor([0.5, 0.5, 0.5])  # gray: no hue
    x[0, :, 0, 1] = torch.tensor([0.7, 0.7, 0.2])  # a tie for the strongest channel
    shifts = torch.tensor([0.1, -0.25, 0.5])
    out = augment.hue(x, shifts)
    for i in range(3):
        for r in range(4):
            for c in range(4):
                h, s, v = colorsys.rgb_to_hsv(*x[i, :, r, c].tolist())
                expected = colorsys.hsv_to_rgb((h + float(shifts[i])) % 1, s, v)
                assert torch.allclose(out[i, :, r, c], torch.tensor(expected), atol=1e-5)


def test_color_on_one_channel_jitters_brightness_and_contrast_only() -> None:
    x = images(c=1)
    assert torch.equal(augment.color(x, Color(p=1, brightness=0, contrast=0, saturation=0.5, hue=0.5), gen()), x)
    out = augment.color(x, Color(p=1, saturation=0, hue=0), gen())
    assert out.shape == x.shape and not torch.equal(out, x)


def test_color_errors() -> None:
    with pytest.raises(SpecError, match=r"saturation and hue need RGB \(3 channels\); the data has 2"):
        pipeline(Color(), c=2)
    pipeline(Color(saturation=0, hue=0), c=2)  # brightness and contrast need no colour
    with pytest.raises(SpecError, match="put it before 'normalize'"):
        Pipeline([Normalize(mean=[0.5], std=[0.5]), Color()], torch.zeros((1, 3, 4, 4)), 0, CPU)
    with pytest.raises(SpecError, match="'mixup' mixes labels: it needs the number of classes"):
        pipeline(MixUp())


# --- mixing --------------------------------------------------------------------------


def test_beta_draws_have_the_textbook_mean_and_variance() -> None:
    for alpha in (0.2, 1.0, 4.0):
        draws = augment.beta(alpha, torch.zeros(40000, 1, 1, 1), gen())
        assert (draws >= 0).all() and (draws <= 1).all()
        assert abs(draws.mean().item() - 0.5) < 0.01
        assert abs(draws.var().item() - 1 / (4 * (2 * alpha + 1))) < 0.01


def test_cutmix_labels_weigh_exactly_the_pixels_pasted() -> None:
    b, h, w = 64, 12, 16
    x = (torch.arange(b, dtype=torch.float32) + 1)[:, None, None, None].expand(b, 2, h, w).clone()
    y = torch.arange(b)  # image i is all i + 1, class i: each pixel says where it came from
    out, target = pipeline(CutMix(p=1), classes=b).train(x, y)
    clipped = 0
    for i in range(b):
        taken = out[i, 0] != i + 1
        count = int(taken.sum())
        assert torch.equal(out[i, 1] != i + 1, taken)  # every channel alike
        if count == 0:
            assert target[i, i] == 1
            continue
        sources = out[i, 0][taken].unique()
        assert len(sources) == 1
        j = int(sources[0]) - 1
        rows, cols = taken.any(1).nonzero()[:, 0], taken.any(0).nonzero()[:, 0]
        assert count == len(rows) * len(cols)  # a box
        clipped += int(rows[0] == 0 or rows[-1] == h - 1 or cols[0] == 0 or cols[-1] == w - 1)
        assert target[i, j] == torch.tensor(count / (h * w), dtype=torch.float32)
        assert math.isclose(float(target[i, i]), 1 - count / (h * w), abs_tol=1e-6)
        assert math.isclose(float(target[i].sum()), 1.0, abs_tol=1e-6)
    assert clipped > 0  # boxes at the border weigh only what is left of them


def test_mixup_images_and_labels_mix_by_the_same_lambda() -> None:
    b = 32
    x, y = images(b=b), torch.arange(b)
    out, target = pipeline(MixUp(p=1, alpha=1.0), classes=b).train(x, y)
    mixed = 0
    for i in range(b):
        lam = target[i, i]
        others = [j for j in range(b) if j != i and target[i, j] > 0]
        if not others:
            assert lam == 1 and torch.allclose(out[i], x[i])
            continue
        (j,) = others
        mixed += 1
        assert math.isclose(float(lam + target[i, j]), 1.0, abs_tol=1e-6)
        assert torch.allclose(out[i], lam * x[i] + (1 - lam) * x[j], atol=1e-6)
    assert mixed > b // 2


def test_mixing_twice_mixes_the_soft_targets() -> None:
    x, y = images(b=32), torch.arange(32) % 4
    p = Pipeline([CutMix(p=1), MixUp(p=1, alpha=1.0)], torch.zeros((1, 3, 8, 8)), 0, CPU, 4)
    _, target = p.train(x, y)
    assert (target >= 0).all() and torch.allclose(target.sum(1), torch.ones(32))
    assert ((target > 0).sum(1) > 2).any()  # some images hold three or four labels


def test_soft_targets_train_as_the_hand_written_cross_entropy() -> None:
    x, y = images(b=16), torch.arange(16) % 4
    _, target = pipeline(MixUp(p=1, alpha=1.0), classes=4).train(x, y)
    model = torch.nn.Linear(3 * 8 * 8, 4)

    def step(smoothing: float, by_hand: bool) -> tuple[Any, Any]:
        model.zero_grad()
        logits = model(x.flatten(1))
        if by_hand:
            smoothed = (1 - smoothing) * target + smoothing / 4
            loss = -(smoothed * F.log_softmax(logits, 1)).sum(1).mean()
        else:
            loss = F.cross_entropy(logits, target, label_smoothing=smoothing)  # as the loop calls it
        loss.backward()
        return loss.detach(), model.weight.grad.clone()

    for smoothing in (0.0, 0.1):
        (loss, grad), (expected, expected_grad) = step(smoothing, False), step(smoothing, True)
        assert torch.allclose(loss, expected, atol=1e-6) and torch.allclose(grad, expected_grad, atol=1e-6)
    assert not torch.allclose(F.cross_entropy(model(x.flatten(1)), y), loss)  # the targets are soft


# --- the recipe ----------------------------------------------------------------------

NET = "inputs: {x: [3, 8, 8]}\nlayers: [flatten, {op: linear, out: 10}]\ntrain:\n  augment: "


@pytest.mark.parametrize(
    ("augment", "message"),
    [
        ("[{op: scale, factor: [2, 1]}]", "key 'train.augment.0.factor': a range [low, high]; got low 2.0 > high 1.0"),
        (
            "[{op: resized_crop, scale: [0.5, 2]}]",
            "key 'train.augment.0.scale': a share of the image's area, at most 1",
        ),
        ("[{op: rotate, degree: 10}]", "unknown key of augmentation 'rotate'; did you mean 'degrees'?"),
        ("[{op: color, hue: 0.7}]", "key 'train.augment.0.hue': input should be less than or equal to 0.5"),
        ("[{op: mixup, alpha: 0}]", "key 'train.augment.0.alpha': input should be greater than 0"),
        ("[mixpu]", "unknown augmentation 'mixpu'; did you mean 'mixup'?"),
    ],
)
def test_recipe_errors_are_located(augment: str, message: str) -> None:
    with pytest.raises(SpecError) as e:
        load_text(NET + augment + "\n", "net.yaml")
    assert message in e.value.message and e.value.location is not None and e.value.location.line == 4


def test_the_new_augmentations_parse_by_name_and_round_trip() -> None:
    spec = load_text(NET + "[rotate, resized_crop, scale, color, cutmix, mixup]\n")
    assert spec.model.train is not None
    augments = spec.model.train.augment
    assert augments == [Rotate(), ResizedCrop(), Scale(), Color(), CutMix(), MixUp()]
    dumped = spec.model.train.model_dump(mode="json")
    assert type(spec.model.train).model_validate(dumped).augment == augments


def test_the_json_schema_takes_every_augmentation_by_name_or_mapping() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    from netspec.schema import spec_schema

    validator = jsonschema.Draft7Validator(spec_schema())

    def errors(augment: str) -> int:
        return len(list(validator.iter_errors(yaml.safe_load(NET + augment))))

    names = "[flip, crop, cutout, normalize, rotate, resized_crop, scale, color, cutmix, mixup]"
    assert errors(names) == 0
    assert errors("[{op: resized_crop, scale: [0.5, 1]}, {op: color, hue: 0.2}, {op: mixup, alpha: 0.4}]") == 0
    assert errors("[rotat]") == 1 and errors("[{op: rotate, degree: 3}]") == 1
