from __future__ import annotations

import datetime
import hashlib
import io

import factory
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from PIL import Image

from django.utils import timezone

from diagnosis.models import Membership, ModelVersion, Organization, PacsDelivery, Patient, Prediction, Review, Scan

CLASS_NAMES = ["Cyst", "Normal", "Stone", "Tumor"]
PASSWORD = "pass-word-123"
# Patient details the patient services refuse, with the field each error names.
INVALID_PATIENT_DETAILS = [
    ("mrn", {"mrn": "   "}),
    ("name", {"name": ""}),
    ("birth_date", {"birth_date": datetime.date.today() + datetime.timedelta(days=1)}),
    ("birth_date", {"birth_date": datetime.date(1850, 5, 1)}),  # a mistyped year
    ("sex", {"sex": "X"}),
]


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (64, 48), mode: str = "L", seed: int = 0) -> bytes:
    """A small synthetic slice; the seed varies the pixels so hashes differ."""
    image = Image.new(mode, size)
    image.putdata([((x * 7 + y * 3 + seed) % 256) if mode == "L" else ((x + seed) % 256, y % 256, 128)
                   for y in range(size[1]) for x in range(size[0])])
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Hospital {n}")
    slug = factory.Sequence(lambda n: f"hospital-{n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password(PASSWORD)


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    organization = factory.SubFactory(OrganizationFactory)
    role = Membership.Role.CLINICIAN


class PatientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Patient

    organization = factory.SubFactory(OrganizationFactory)
    mrn = factory.Sequence(lambda n: f"MRN{n:06d}")
    name = factory.Faker("name")
    birth_date = factory.Faker("date_between", start_date=datetime.date(1930, 1, 1), end_date=datetime.date(2015, 1, 1))
    sex = Patient.Sex.FEMALE


class ModelVersionFactory(factory.django.DjangoModelFactory):
    """A registered version whose file is not meant to be loaded (for tests that never infer)."""

    class Meta:
        model = ModelVersion

    name = factory.Sequence(lambda n: f"model-v{n}")
    path = factory.Sequence(lambda n: f"models/not-loaded-{n}.keras")
    sha256 = factory.Sequence(lambda n: hashlib.sha256(str(n).encode()).hexdigest())
    class_names = factory.LazyFunction(lambda: list(CLASS_NAMES))
    metrics = factory.LazyFunction(lambda: {"macro_f1": 0.5})
    is_active = False


class ScanFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Scan

    patient = factory.SubFactory(PatientFactory)
    format = Scan.Format.PNG
    width = 64
    height = 48
    uploaded_by = factory.SubFactory(UserFactory)
    original_filename = "slice.png"
    image = factory.LazyAttribute(lambda o: ContentFile(image_bytes("PNG", (o.width, o.height), seed=o.seed),
                                                        name="slice.png"))
    sha256 = factory.LazyAttribute(lambda o: hashlib.sha256(image_bytes("PNG", (o.width, o.height),
                                                                        seed=o.seed)).hexdigest())

    class Params:
        # Each scan its own slice, as a patient's scans are (the database holds a slice once per patient); never
        # seed 0, the pixels of a test's own image_bytes() upload.
        seed = factory.Sequence(lambda n: n % 255 + 1)


class PredictionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Prediction

    scan = factory.SubFactory(ScanFactory)
    model_version = factory.SubFactory(ModelVersionFactory)
    status = Prediction.Status.QUEUED


def done_probabilities(label: str, confidence: float = 0.9) -> dict[str, float]:
    """Probabilities that sum to 1 with ``label`` on top at ``confidence``."""
    rest = (1.0 - confidence) / (len(CLASS_NAMES) - 1)
    return {name: (confidence if name == label else rest) for name in CLASS_NAMES}


class DonePredictionFactory(PredictionFactory):
    """A finished prediction, as the worker would leave it."""

    class Params:
        top = 0.9

    status = Prediction.Status.DONE
    label = "Stone"
    probabilities = factory.LazyAttribute(lambda o: done_probabilities(o.label, o.top))
    confidence = factory.LazyAttribute(lambda o: o.top)
    started_at = factory.LazyFunction(timezone.now)
    finished_at = factory.LazyFunction(timezone.now)
    inference_ms = 80


class ReviewFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Review

    prediction = factory.SubFactory(DonePredictionFactory)
    scan = factory.SelfAttribute("prediction.scan")
    label = factory.SelfAttribute("prediction.label")
    agrees_with_ai = factory.LazyAttribute(lambda o: o.label == o.prediction.label if o.prediction.status == "done" else None)
    reviewed_by = factory.SubFactory(UserFactory)


class PacsDeliveryFactory(factory.django.DjangoModelFactory):
    """A finished result of a DICOM slice sent (or being sent) to its organization's archive; choose the organization
    with ``prediction__scan__patient__organization``."""

    class Meta:
        model = PacsDelivery

    prediction = factory.SubFactory(DonePredictionFactory, scan__dicom_study_uid="1.2.3",
                                    scan__dicom_instance_uid=factory.Sequence(lambda n: f"1.2.3.{n}"))
    scan = factory.SelfAttribute("prediction.scan")
    organization = factory.SelfAttribute("scan.patient.organization")
    url = "https://pacs.example.org/dicom-web"
    sop_instance_uid = factory.Sequence(lambda n: f"2.25.{n}")


def token_client(user) -> "APIClient":
    """An API client that authenticates as ``user`` with a fresh token, as a hospital system would."""
    from rest_framework.test import APIClient

    from diagnosis.services import api_token_rotate

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_rotate(user=user)}")
    return client
