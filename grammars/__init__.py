# grammar package data
