"""The administrators' pages: start and follow runs, compare, promote and roll back."""

import pytest
from django.urls import reverse

from diagnosis.models import ModelVersion
from diagnosis.tests.factories import CLASS_NAMES, ModelVersionFactory
from training.models import ModelPromotion, TrainingRun

from .factories import LockedTestEvaluationFactory, LockedTestSetFactory, TrainingRunFactory, probabilities_with_recall


pytestmark = pytest.mark.usefixtures("training_settings", "training_queue")


@pytest.mark.parametrize("name, args", [("index", []), ("model_list", []), ("run_detail", ["run"]),
                                        ("model_detail", ["version"])])
def test_clinicians_get_403_and_admins_the_page(client, clinician, admin_ui, name, args):
    objects = {"run": TrainingRunFactory().pk, "version": ModelVersionFactory().pk}
    url = reverse(f"training:{name}", args=[objects[a] for a in args])

    assert admin_ui.get(url).status_code == 200
    client.force_login(clinician)
    assert client.get(url).status_code == 403


def test_the_form_starts_a_run_and_leads_to_its_page(admin_ui, training_queue, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_ui.post(reverse("training:index"), {"preset": "quick", "data": "developer", "epochs": "2"})

    run = TrainingRun.objects.get()
    assert response.status_code == 302 and response.url == reverse("training:run_detail", args=[run.pk])
    assert run.preset == "quick" and run.overrides == {"epochs": 2}
    assert training_queue() == [{"task": "training.tasks.train_model", "args": [run.pk], "kwargs": {}}]
    page = admin_ui.get(response.url).content.decode()
    assert "Training run" in page and "Cancel the run" in page


def test_the_page_says_when_a_run_is_in_progress_and_refuses_a_second(admin_ui):
    current = TrainingRunFactory(status="running")

    page = admin_ui.get(reverse("training:index")).content.decode()
    assert f"is running" in page and "Only one run at a time" in page

    response = admin_ui.post(reverse("training:index"), {"preset": "standard", "data": "developer"})
    assert response.status_code == 409
    assert f"Training run {current.pk}" in response.content.decode()
    assert TrainingRun.objects.count() == 1


def test_bad_parameters_show_the_reason_on_the_form(admin_ui):
    response = admin_ui.post(reverse("training:index"), {"preset": "standard", "data": "developer",
                                                         "image_size": "16"})

    assert response.status_code == 400
    assert "Ensure this value is greater than or equal to 32" in response.content.decode()
    assert not TrainingRun.objects.exists()


def test_the_status_json_gives_live_progress(admin_ui):
    run = TrainingRunFactory(status="running", stage="train", epoch=2, epochs=5, eta_seconds=30,
                             metrics={"epoch": {"loss": 0.5, "val_loss": 0.6, "val_accuracy": 0.7, "val_macro_f1": 0.6}},
                             log="a\nb")

    state = admin_ui.get(reverse("training:run_status", args=[run.pk])).json()

    assert (state["status"], state["stage"], state["epoch"], state["epochs"], state["eta_seconds"]) == (
        "running", "train", 2, 5, 30)
    assert state["metrics"]["epoch"]["val_macro_f1"] == 0.6 and state["log_tail"] == "a\nb" and not state["final"]


def test_a_refit_epoch_says_why_it_has_no_validation_scores(admin_ui):
    refitting = TrainingRunFactory(status="running", stage="train", epoch=22, epochs=36, metrics={
        "epoch": {"loss": 0.41, "val_loss": None, "val_accuracy": None, "val_macro_f1": None}})
    validating = TrainingRunFactory(status="succeeded", stage="evaluate", epoch=20, epochs=20, metrics={
        "epoch": {"loss": 0.5, "val_loss": 0.6, "val_accuracy": 0.7, "val_macro_f1": 0.65}})

    page = admin_ui.get(reverse("training:run_detail", args=[refitting.pk])).content.decode()
    assert "loss 0.4100 · refit on training and validation slices, nothing left to validate on" in page
    assert "validation macro-F1" not in page
    page = admin_ui.get(reverse("training:run_detail", args=[validating.pk])).content.decode()
    assert "validation macro-F1 0.650" in page and "refit on" not in page


def test_another_organizations_runs_are_neither_listed_nor_shown(admin_ui, organization, other_organization):
    own = TrainingRunFactory(organization=organization)
    theirs = TrainingRunFactory(organization=other_organization, log="reviewed scan 412 of Mercy General")

    page = admin_ui.get(reverse("training:index")).content.decode()

    assert reverse("training:run_detail", args=[own.pk]) in page
    assert reverse("training:run_detail", args=[theirs.pk]) not in page
    for name in ("run_detail", "run_status", "run_log"):
        assert admin_ui.get(reverse(f"training:{name}", args=[theirs.pk])).status_code == 404
    assert admin_ui.post(reverse("training:run_cancel", args=[theirs.pk])).status_code == 404


def test_the_page_says_another_organization_is_training_without_naming_who(admin_ui, other_organization):
    theirs = TrainingRunFactory(status="queued", organization=other_organization, requested_by__username="mercy-admin")

    page = admin_ui.get(reverse("training:index")).content.decode()
    assert "A training run of another organization is queued" in page and "mercy-admin" not in page

    response = admin_ui.post(reverse("training:index"), {"preset": "standard", "data": "developer"})
    assert response.status_code == 409
    assert "another organization is queued" in response.content.decode()
    assert f"Training run {theirs.pk}" not in response.content.decode()


def test_a_version_trained_by_another_organization_names_its_run_without_a_link(admin_ui, other_organization):
    version = ModelVersionFactory()
    theirs = TrainingRunFactory(organization=other_organization, model_version=version)

    page = admin_ui.get(reverse("training:model_detail", args=[version.pk])).content.decode()

    assert f"{theirs.pk}, started by another organization" in page
    assert reverse("training:run_detail", args=[theirs.pk]) not in page


def test_cancel_from_the_page(admin_ui):
    run = TrainingRunFactory(status="running")

    admin_ui.post(reverse("training:run_cancel", args=[run.pk]))

    assert TrainingRun.objects.get(pk=run.pk).cancel_requested


def test_the_version_page_says_how_many_test_patients_of_each_class_were_read_right(admin_ui):
    rows = [{"series": "Stone-s1", "label": "Stone", "slices": 9, "verdict": "Cyst", "slices_right": 0.2},
            {"series": "Stone-s2", "label": "Stone", "slices": 4, "verdict": "Stone", "slices_right": 1.0},
            {"series": "Tumor-s1", "label": "Tumor", "slices": 30, "verdict": "Tumor", "slices_right": 0.9}]
    version = ModelVersionFactory(card={"metrics": {"test_series_split": {"by_series": {"series": rows}}}})
    older = ModelVersionFactory(card={"metrics": {"test_series_split": {"accuracy": 0.8}}})

    page = admin_ui.get(reverse("training:model_detail", args=[version.pk])).content.decode()
    assert "Test patients read right" in page
    assert "Stone 1 of 2" in page and "Tumor 1 of 1" in page and "Cyst 0 of" not in page
    assert "Test patients read right" not in admin_ui.get(reverse("training:model_detail", args=[older.pk])).content.decode()


def test_the_version_page_leads_an_organizations_administrator_to_its_performance_on_their_patients(admin_ui):
    version = ModelVersionFactory()

    page = admin_ui.get(reverse("training:model_detail", args=[version.pk])).content.decode()

    link = f'{reverse("diagnosis:performance")}?version={version.pk}'
    assert link in page
    assert admin_ui.get(link).status_code == 200


def test_the_comparison_is_side_by_side_and_a_refused_promotion_needs_a_reason(admin_ui):
    test_set = LockedTestSetFactory()
    active = ModelVersionFactory(is_active=True, name="serving")
    LockedTestEvaluationFactory(model_version=active, test_set=test_set)
    candidate = ModelVersionFactory(name="challenger")
    LockedTestEvaluationFactory(model_version=candidate, test_set=test_set, recall={"Stone": 0.6})

    page = admin_ui.get(reverse("training:model_detail", args=[candidate.pk])).content.decode()
    assert "Recall Stone" in page and "0.600" in page and "1.000" in page and "Expected calibration error" in page
    assert "The gate refuses it" in page

    refused = admin_ui.post(reverse("training:model_promote", args=[candidate.pk]), {"reason": ""})
    assert refused.status_code == 409 and "give a written reason" in refused.content.decode()
    assert ModelVersion.objects.get(is_active=True) == active

    admin_ui.post(reverse("training:model_promote", args=[candidate.pk]), {"reason": "Reviewed by the lead."})
    assert ModelVersion.objects.get(is_active=True) == candidate

    admin_ui.post(reverse("training:model_rollback", args=[active.pk]), {"reason": "Too many missed stones."})
    assert ModelVersion.objects.get(is_active=True) == active
    audit = admin_ui.get(reverse("training:model_list")).content.decode()
    assert "Too many missed stones." in audit and "overridden" in audit and "Rollback" in audit
    assert list(ModelPromotion.objects.values_list("kind", flat=True)) == ["rollback", "promote"]


def test_the_version_list_says_when_a_versions_scores_leave_out_images_it_trained_on(admin_ui):
    test_set = LockedTestSetFactory()
    LockedTestEvaluationFactory(model_version=ModelVersionFactory(name="older-split"), test_set=test_set, seen=[0, 1, 2])
    LockedTestEvaluationFactory(model_version=ModelVersionFactory(name="locked-split"), test_set=test_set)

    page = admin_ui.get(reverse("training:model_list")).content.decode()

    assert page.count("images it trained on left out") == 1 and "(3 images it trained on left out)" in page



def test_a_candidate_that_knows_fewer_classes_than_the_active_model_is_compared_and_refused(admin_ui):
    test_set = LockedTestSetFactory()
    five = [*CLASS_NAMES, "Other"]
    active = ModelVersionFactory(is_active=True, name="serving", class_names=five)
    labels = [record["label"] for record in test_set.records]
    LockedTestEvaluationFactory(model_version=active, test_set=test_set, class_names=five,
                                probabilities=[row + [0.0] for row in probabilities_with_recall(labels, {})])
    candidate = ModelVersionFactory(name="challenger")
    LockedTestEvaluationFactory(model_version=candidate, test_set=test_set)

    page = admin_ui.get(reverse("training:model_detail", args=[candidate.pk]))
    refused = admin_ui.post(reverse("training:model_promote", args=[candidate.pk]), {"reason": ""})

    assert page.status_code == 200 and "Recall Other" in page.content.decode()
    assert "The models know different classes" in page.content.decode()
    assert refused.status_code == 409 and ModelVersion.objects.get(is_active=True) == active

# Outside a test transaction, as a request runs, so the broker is asked during the request.
@pytest.mark.django_db(transaction=True)
def test_when_the_broker_is_down_asking_for_an_evaluation_shows_why_it_was_not_queued(admin_ui, broker_down):
    version = ModelVersionFactory(name="challenger")

    response = admin_ui.post(reverse("training:model_evaluate", args=[version.pk]), follow=True)

    page = response.content.decode()
    assert response.status_code == 200 and "The evaluation of challenger could not be queued" in page
    assert "is queued on the training worker" not in page


@pytest.mark.parametrize("name, page", [("run_cancel", "run_detail"), ("model_promote", "model_detail"),
                                        ("model_rollback", "model_detail"), ("model_evaluate", "model_detail")])
def test_a_get_on_a_form_target_goes_to_its_page_and_changes_nothing(admin_ui, name, page):
    pk = TrainingRunFactory(status="running").pk if page == "run_detail" else ModelVersionFactory().pk

    response = admin_ui.get(reverse(f"training:{name}", args=[pk]))

    assert response.status_code == 302 and response.url == reverse(f"training:{page}", args=[pk])
    assert not TrainingRun.objects.filter(cancel_requested=True).exists() and not ModelPromotion.objects.exists()
