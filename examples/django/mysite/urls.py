from django.urls import path

from mysite import views

urlpatterns = [
    path("", views.index),
    path("books/<int:book_id>", views.book),
    path("echo", views.echo),
]
