"""SCIM 2.0 for the hospital's directory, mounted at /scim/v2/ (the "tenant URL" a directory is given). SCIM's
addresses have no trailing slash; one is accepted all the same."""

from django.urls import re_path

from .views.scim import ScimResourceTypesView, ScimServiceProviderConfigView, ScimUsersView, ScimUserView

urlpatterns = [
    re_path(r"^Users/?$", ScimUsersView.as_view(), name="scim-users"),
    re_path(r"^Users/(?P<pk>[^/]+)/?$", ScimUserView.as_view(), name="scim-user"),
    re_path(r"^ServiceProviderConfig/?$", ScimServiceProviderConfigView.as_view(), name="scim-config"),
    re_path(r"^ResourceTypes/?$", ScimResourceTypesView.as_view(), name="scim-resource-types"),
]
