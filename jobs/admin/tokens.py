"""API tokens in the admin, by their prefix only (:mod:`jobs.tokens`)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse

from jobs import tokens
from jobs.models import ApiToken


class ApiTokenForm(forms.ModelForm):
    class Meta:
        model = ApiToken
        fields = ("user", "name")


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens by their prefix only: the key is shown once, on the page that answers its creation, and
    the table holds only its hash (:mod:`jobs.tokens`)."""

    form = ApiTokenForm
    list_display = ("key_prefix", "user", "name", "created")
    list_select_related = ("user",)
    search_fields = ("user__username", "name", "prefix")
    readonly_fields = ("key_prefix", "created")

    def get_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return ("user", "name") if obj is None else ("user", "name", "key_prefix", "created")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return () if obj is None else ("user", "key_prefix", "created")

    @admin.display(description="key")
    def key_prefix(self, token: ApiToken) -> str:
        return f"{token.prefix}\u2026"

    def save_model(self, request: HttpRequest, obj: ApiToken, form: Any, change: bool) -> None:
        if change:
            obj.save(update_fields=["name"])
            return
        key = tokens.new_key()
        obj.prefix, obj.digest = tokens.prefix_of(key), tokens.digest(key)
        obj.save()
        obj._shown_key = key  # type: ignore[attr-defined]  # for response_add, this request only

    def response_add(self, request: HttpRequest, obj: ApiToken, post_url_continue: str | None = None) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": "API token created",
            "token": obj,
            "key": obj._shown_key,  # type: ignore[attr-defined]
            "opts": self.opts,
            "list_url": reverse("admin:jobs_apitoken_changelist"),
        }
        return TemplateResponse(request, "admin/jobs/apitoken/created.html", context)  # the admin adds no-store
