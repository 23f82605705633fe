"""intrepid.learn"""
