"""A model version's card, and its performance on the organization's reviewed slices next to that card."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ... import selectors
from ...models import InputsAlert
from ...selectors.reliability import ClassReliability, ModelCardView
from ...selectors.performance import (ABOVE, BELOW, CONSISTENT, MIN_RESULTS, MIN_REVIEWED, NO_CARD, TOO_FEW, InputsInUse,
                                      Measure, PerformanceInUse)

VERDICTS = [
    (BELOW, "below: even the 95% interval's upper end is under the card's value"),
    (CONSISTENT, "consistent: not below the card's value"),
    (TOO_FEW, "too_few: fewer reviewed slices than min_reviewed"),
    (NO_CARD, "no_card: the version's card records no value for it"),
]


def _interval_field(help_text: str = "") -> serializers.ListField:
    """A 95% interval as [low, high], or null."""
    return serializers.ListField(child=serializers.FloatField(), min_length=2, max_length=2, allow_null=True,
                                 help_text=help_text)


class PerformanceFilterSerializer(serializers.Serializer):
    model_version = serializers.IntegerField(
        required=False, min_value=1,
        help_text="The id of a model version; none: the active version.")


class PerformanceQuerySerializer(PerformanceFilterSerializer):
    weeks = serializers.RegexField(
        r"^(all|[1-9][0-9]{0,2})$", required=False, default="12",
        error_messages={"invalid": "Send a number of weeks from 1 to 999, or all."},
        help_text="How many of the newest weeks to return (default 12), or all: every week since the version's first "
                  "result in your organization.")

    def validate_weeks(self, value: str) -> int | None:
        return None if value == "all" else int(value)


class MeasureSerializer(serializers.Serializer):
    name = serializers.CharField()
    count = serializers.IntegerField(help_text="slices that met the measure")
    of = serializers.IntegerField(help_text="reviewed slices it is a share of")
    patients = serializers.IntegerField(help_text="the patients those reviewed slices came from")
    effective = serializers.FloatField(help_text="the independent slices the reviewed ones are worth, between "
                                                 "`patients` and `of`: slices of one patient are alike")
    rate = serializers.FloatField(allow_null=True, help_text="count / of; null when none are reviewed")
    interval = serializers.SerializerMethodField(help_text="95% Wilson score interval of the rate over the `effective` "
                                                           "slices; null when none")
    card = serializers.FloatField(allow_null=True, help_text="the value on the card's series test split")
    verdict = serializers.ChoiceField(choices=VERDICTS)

    @extend_schema_field(_interval_field())
    def get_interval(self, measure: Measure) -> list[float] | None:
        return list(measure.interval) if measure.interval else None


class ClassInUseSerializer(serializers.Serializer):
    name = serializers.CharField()
    diagnosed = serializers.IntegerField(help_text="in-scope results with this label")
    found = MeasureSerializer(help_text="of the slices reviewers said show this class, the share the AI labelled so "
                                        "(recall)")
    right = MeasureSerializer(help_text="of the AI's labels of this class, the share reviewers kept (precision)")


class WeekInUseSerializer(serializers.Serializer):
    start = serializers.DateField(help_text="the week's Monday")
    diagnosed = serializers.IntegerField()
    failed = serializers.IntegerField()
    out_of_scope = serializers.IntegerField()
    uncertain = serializers.IntegerField(help_text="in scope, top probability under the version's threshold")
    labels = serializers.DictField(child=serializers.IntegerField(), help_text="in-scope results per label")
    reviewed = serializers.IntegerField(help_text="this week's results whose current review judged them")
    agreed = serializers.IntegerField()


class InputsInUseSerializer(serializers.Serializer):
    weeks = serializers.IntegerField(help_text="the newest weeks counted, this one included")
    diagnosed = serializers.IntegerField(help_text="finished results in those weeks")
    out_of_scope = serializers.IntegerField()
    patients = serializers.IntegerField(help_text="the patients those results came from")
    effective = serializers.FloatField(help_text="the independent results they are worth, between `patients` and "
                                                 "`diagnosed`: slices of one patient are alike")
    rate = serializers.FloatField(allow_null=True, help_text="out_of_scope / diagnosed; null when none")
    interval = serializers.SerializerMethodField(help_text="95% Wilson score interval of the rate over the `effective` "
                                                           "results; null when none")
    expected = serializers.FloatField(
        allow_null=True, help_text="the share of slices like its training data that the version finds out of scope "
                                   "(what its card's threshold leaves out of the validation slices)")
    min_results = serializers.SerializerMethodField(help_text="results the share needs to be judged")
    verdict = serializers.ChoiceField(choices=[
        (ABOVE, "above: even the 95% interval's lower end is over the expected share"),
        (CONSISTENT, "consistent: not above the expected share"),
        (TOO_FEW, "too_few: fewer results than min_results"),
        (NO_CARD, "no_card: the version's card does not say"),
    ])

    @extend_schema_field(_interval_field())
    def get_interval(self, inputs: InputsInUse) -> list[float] | None:
        return list(inputs.interval) if inputs.interval else None

    def get_min_results(self, _inputs: InputsInUse) -> int:
        return MIN_RESULTS


class PerformanceAlertSerializer(serializers.Serializer):
    raised_at = serializers.DateTimeField(help_text="the review that put a share below the card")
    cleared_at = serializers.DateTimeField(allow_null=True, help_text="null while the alert is open")
    measures = serializers.ListField(child=serializers.CharField(), help_text="the shares below, as last seen")


class InputsAlertSerializer(serializers.Serializer):
    raised_at = serializers.DateTimeField(help_text="the judgement that found the out-of-scope share above the card's")
    cleared_at = serializers.DateTimeField(allow_null=True, help_text="null while the alert is open")
    ended = serializers.ChoiceField(
        choices=InputsAlert.Ended.choices, allow_blank=True,
        help_text="why it ended (usual: the share came back within the card's; too_few: too few recent results were "
                  "left to judge; not_active: another version was made active); empty while it is open")
    out_of_scope = serializers.IntegerField(help_text="out-of-scope results in the weeks counted, as last judged")
    diagnosed = serializers.IntegerField(help_text="finished results in the weeks counted, as last judged")


class PerformanceInUseSerializer(serializers.Serializer):
    model_version = serializers.IntegerField(source="model_version.pk")
    model_version_name = serializers.CharField(source="model_version.name")
    active = serializers.BooleanField(source="model_version.is_active")
    threshold = serializers.FloatField(help_text="the version's confidence threshold")
    diagnosed = serializers.IntegerField(help_text="finished results of the organization's scans")
    failed = serializers.IntegerField()
    out_of_scope = serializers.IntegerField()
    uncertain = serializers.IntegerField()
    reviewed = serializers.IntegerField()
    min_reviewed = serializers.SerializerMethodField(help_text="reviewed slices a measure needs to be judged")
    accuracy = MeasureSerializer(help_text="the share of reviewed slices whose AI label reviewers kept")
    classes = ClassInUseSerializer(many=True)
    weeks = WeekInUseSerializer(many=True, help_text="the newest weeks, newest first: 12 unless ?weeks= asks for more "
                                                     "or for all")
    inputs = InputsInUseSerializer(help_text="the share of the newest weeks' results found out of scope, against the "
                                             "share expected of slices like the training data: drift in what is "
                                             "uploaded (a new scanner, protocol or kind of image)")
    below = serializers.SerializerMethodField(help_text="the names of the measures below the card")
    alerts = serializers.SerializerMethodField(
        help_text="when the version was below its card in your organization (judged at each review, withdrawal "
                  "and restoral of a reviewed scan while it is active), newest first")
    inputs_alerts = serializers.SerializerMethodField(
        help_text="when the version's recent out-of-scope share was above what its card expects in your organization "
                  "(judged on a schedule while it is active), newest first")

    def get_min_reviewed(self, _performance: PerformanceInUse) -> int:
        return MIN_REVIEWED

    def get_below(self, performance: PerformanceInUse) -> list[str]:
        return [m.name for m in performance.below]

    @extend_schema_field(InputsAlertSerializer(many=True))
    def get_inputs_alerts(self, performance: PerformanceInUse) -> list[dict]:
        alerts = selectors.inputs_alerts(organization=self.context["organization"],
                                         model_version=performance.model_version)
        return InputsAlertSerializer(alerts, many=True).data

    @extend_schema_field(PerformanceAlertSerializer(many=True))
    def get_alerts(self, performance: PerformanceInUse) -> list[dict]:
        alerts = selectors.performance_alerts(organization=self.context["organization"],
                                              model_version=performance.model_version)
        return PerformanceAlertSerializer(alerts, many=True).data


class ScoreSerializer(serializers.Serializer):
    value = serializers.FloatField()
    interval = _interval_field("95%, bootstrapped over test patients; null when the card has none")


class ClassCardSerializer(serializers.Serializer):
    name = serializers.CharField()
    found = serializers.FloatField(help_text="the share of the class's test slices it labelled so (recall)")
    found_interval = serializers.SerializerMethodField(help_text="95% interval of found; null when the card has none")
    right = serializers.FloatField(help_text="the share of its labels of the class that were right (precision)")
    slices = serializers.IntegerField()
    patients = serializers.IntegerField(allow_null=True)
    patients_right = serializers.IntegerField(allow_null=True, help_text="test patients whose slices' mean "
                                                                         "probability named the class")

    @extend_schema_field(_interval_field())
    def get_found_interval(self, row: ClassReliability) -> list[float] | None:
        interval = self.context["intervals"].get(row.name)
        return list(interval) if interval else None


class ViewScoreSerializer(serializers.Serializer):
    view = serializers.CharField()
    slices = serializers.IntegerField()
    accuracy = serializers.FloatField()


class UnmarkedMissSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="the true class")
    slices = serializers.IntegerField()
    patients = serializers.IntegerField(allow_null=True)
    read_as = serializers.DictField(child=serializers.IntegerField(), help_text="slices per class it was read as")


class ConfidenceSplitSerializer(serializers.Serializer):
    threshold = serializers.FloatField(help_text="the confidence threshold it was measured at (the version's)")
    confident = serializers.IntegerField(help_text="test slices whose result was not marked uncertain (nor out of "
                                                   "scope, when out_of_scope is given)")
    confident_right = serializers.IntegerField()
    uncertain = serializers.IntegerField(help_text="test slices marked uncertain or out of scope")
    uncertain_right = serializers.IntegerField()
    out_of_scope = serializers.IntegerField(
        allow_null=True, help_text="of the uncertain, those marked for being out of scope; null when the card counted "
                                   "only the probability")
    unmarked_misses = UnmarkedMissSerializer(many=True, source="misses",
                                             help_text="per true class, the slices read wrong with no uncertain mark")


class ModelCardSerializer(serializers.Serializer):
    model_version = serializers.IntegerField(source="model_version.pk")
    name = serializers.CharField(source="model_version.name")
    active = serializers.BooleanField(source="model_version.is_active")
    classes = serializers.ListField(child=serializers.CharField(), source="model_version.class_names")
    intended_use = serializers.CharField()
    test_patients = serializers.IntegerField(source="reliability.patients", allow_null=True, default=None)
    accuracy = ScoreSerializer(allow_null=True, help_text="on test slices of patients none of its training saw")
    macro_f1 = ScoreSerializer(allow_null=True)
    patients_accuracy = serializers.FloatField(allow_null=True)
    per_class = serializers.SerializerMethodField()
    views = ViewScoreSerializer(many=True, help_text="accuracy on axial and on coronal test slices")
    limitations = serializers.ListField(child=serializers.CharField(), help_text="stated from the figures above")
    confidence_threshold = serializers.FloatField(source="threshold",
                                                  help_text="under this top probability a result is marked uncertain")
    by_confidence = ConfidenceSplitSerializer(
        source="confidence", allow_null=True,
        help_text="how often its results on the test patients were right with and without the uncertain mark; null "
                  "when its card does not say at this threshold")
    random_split_accuracy = serializers.FloatField(
        allow_null=True, help_text="on a leaky random per-image split: what papers report, not a measure on new patients")

    @extend_schema_field(ClassCardSerializer(many=True))
    def get_per_class(self, card: ModelCardView) -> list[dict]:
        rows = card.reliability.classes if card.reliability else []
        return ClassCardSerializer(rows, many=True, context={"intervals": card.recall_intervals}).data
